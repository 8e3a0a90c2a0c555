# The public names of `retryq`, and where each is defined: the one list. Type checkers read it;
# retryq/__init__.py reads it too, to import each name from its module on first use.

from .backoff import BackoffStrategy as BackoffStrategy
from .backoff import RetryState as RetryState
from .backoff import constant as constant
from .backoff import exponential as exponential
from .backoff import fixed as fixed
from .backoff import jitter as jitter
from .backoff import linear as linear
from .config import Config as Config
from .config import WorkflowSettings as WorkflowSettings
from .config import load_config as load_config
from .deferral import defer as defer
from .errors import ConfigError as ConfigError
from .errors import InvalidInput as InvalidInput
from .errors import JobNotFound as JobNotFound
from .errors import JobStateError as JobStateError
from .errors import LockTimeout as LockTimeout
from .errors import OpenJobExists as OpenJobExists
from .errors import QueueCorrupt as QueueCorrupt
from .errors import RetryqError as RetryqError
from .errors import StoreIOError as StoreIOError
from .inprocess import RetryAttempt as RetryAttempt
from .inprocess import RetryContext as RetryContext
from .inprocess import Retrying as Retrying
from .inprocess import RetryManager as RetryManager
from .inprocess import retry as retry
from .inprocess import retrying as retrying
from .models import Attempt as Attempt
from .models import Job as Job
from .models import JobKey as JobKey
from .models import JobStatus as JobStatus
from .models import Outcome as Outcome
from .policy import RetryOptions as RetryOptions
from .processor import Processor as Processor
from .queue import BulkResult as BulkResult
from .queue import FetchReport as FetchReport
from .queue import RetryQueue as RetryQueue
from .queue import ScheduleResult as ScheduleResult
from .recoverable import ExceptionFilter as ExceptionFilter
from .recoverable import is_recoverable as is_recoverable
from .recoverable import retry_after as retry_after
from .stores import JobFilter as JobFilter
from .stores import JsonFileStore as JsonFileStore
from .stores import MemoryStore as MemoryStore
from .stores import Store as Store
from .summary import ProcessReport as ProcessReport

__version__: str
