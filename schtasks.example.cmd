:: retryq on Windows, with the Task Scheduler.
:: Run these once from an administrator prompt; adjust C:\app to the project directory and
:: APP_USER to the account that owns the project (not an administrator, not SYSTEM).
::
:: /RU and /RP * run the tasks whether or not that user is logged on (the password is asked
:: once, here). The queue, its lock and the commands are portable; stopping a workflow uses
:: `taskkill /T` (then `/T /F` after kill_grace) instead of POSIX process groups.

set APP_USER=%USERDOMAIN%\%USERNAME%

:: The log folder must exist before the first run writes to it.
if not exist C:\app\logs mkdir C:\app\logs

:: The equivalent of crontab.example: run due retries every 5 minutes.
schtasks /Create /F /TN "retryq process" /SC MINUTE /MO 5 /RU "%APP_USER%" /RP * ^
  /TR "cmd /c cd /d C:\app && C:\app\.venv\Scripts\retryq.exe process >> C:\app\logs\retryq.log 2>&1"

:: The insurance import: schedule the day's chain at 03:55 for 04:00; retryq then tries hourly
:: until 08:00 (workflow "assurance-import" in retryq.toml: max_attempts = 5, backoff fixed 60m).
schtasks /Create /F /TN "retryq assurance import" /SC DAILY /ST 03:55 /RU "%APP_USER%" /RP * ^
  /TR "powershell -NoProfile -Command \"cd C:\app; .\.venv\Scripts\retryq.exe schedule assurance (Get-Date -Format yyyy-MM-dd) 60 --at 04:00 --workflow assurance-import >> C:\app\logs\retryq.log 2>&1\""

:: Check: schtasks /Query /TN "retryq process" /V /FO LIST
