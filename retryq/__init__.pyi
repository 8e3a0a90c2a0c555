# The public names of `retryq`, and where each is defined: the one list. Type checkers read it;
# retryq/__init__.py reads it too, to import each name from its module on first use.

from .inprocess.deferral import defer as defer
from .inprocess.forms import RetryAttempt as RetryAttempt
from .inprocess.forms import RetryContext as RetryContext
from .inprocess.forms import Retrying as Retrying
from .inprocess.forms import RetryManager as RetryManager
from .inprocess.forms import retry as retry
from .inprocess.forms import retrying as retrying
from .inprocess.policy import RetryOptions as RetryOptions
from .inprocess.recoverable import ExceptionFilter as ExceptionFilter
from .inprocess.recoverable import is_recoverable as is_recoverable
from .inprocess.recoverable import retry_after as retry_after
from .queue import BulkResult as BulkResult
from .queue import FetchReport as FetchReport
from .queue import RetryQueue as RetryQueue
from .queue import ScheduleResult as ScheduleResult
from .record.backoff import BackoffStrategy as BackoffStrategy
from .record.backoff import RetryState as RetryState
from .record.backoff import constant as constant
from .record.backoff import exponential as exponential
from .record.backoff import fixed as fixed
from .record.backoff import jitter as jitter
from .record.backoff import linear as linear
from .record.breakerstate import BreakerSettings as BreakerSettings
from .record.breakerstate import Incident as Incident
from .record.breakerstate import Pause as Pause
from .record.errors import ConfigError as ConfigError
from .record.errors import InvalidInput as InvalidInput
from .record.errors import JobNotFound as JobNotFound
from .record.errors import JobStateError as JobStateError
from .record.errors import LockTimeout as LockTimeout
from .record.errors import OpenJobExists as OpenJobExists
from .record.errors import QueueCorrupt as QueueCorrupt
from .record.errors import RetryqError as RetryqError
from .record.errors import StoreIOError as StoreIOError
from .record.models import Attempt as Attempt
from .record.models import Job as Job
from .record.models import JobKey as JobKey
from .record.models import JobStatus as JobStatus
from .record.models import Outcome as Outcome
from .running.options import ProcessorOptions as ProcessorOptions
from .running.processor import Processor as Processor
from .running.recurring import ScheduleStatus as ScheduleStatus
from .running.summary import ProcessReport as ProcessReport
from .settings.config import Config as Config
from .settings.config import Schedule as Schedule
from .settings.config import WorkflowSettings as WorkflowSettings
from .settings.config import load_config as load_config
from .stores import JobFilter as JobFilter
from .stores import JsonFileStore as JsonFileStore
from .stores import MemoryStore as MemoryStore
from .stores import Store as Store

__version__: str
