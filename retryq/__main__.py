"""``python -m retryq`` is the ``retryq`` command."""

from .cli import main

if __name__ == "__main__":
    main()
