:: retryq on Windows, with the Task Scheduler.
:: Run these once from an administrator prompt; adjust C:\app to the project directory.
::
:: Untested in CI (which runs on Linux): the queue, its lock and the commands are portable;
:: stopping a workflow's whole process tree uses `taskkill /T` instead of POSIX process groups.

:: The equivalent of crontab.example: run due retries every 5 minutes.
schtasks /Create /F /TN "retryq process" /SC MINUTE /MO 5 ^
  /TR "cmd /c cd /d C:\app && C:\app\.venv\Scripts\retryq.exe process >> C:\app\logs\retryq.log 2>&1"

:: The insurance import: start the day's chain at 04:00; retryq then tries hourly until 08:00
:: (workflow "assurance-import" in retryq.toml: max_attempts = 5, backoff fixed 60m).
schtasks /Create /F /TN "retryq assurance import" /SC DAILY /ST 04:00 ^
  /TR "powershell -NoProfile -Command \"cd C:\app; .\.venv\Scripts\retryq.exe schedule assurance (Get-Date -Format yyyy-MM-dd) 0 --workflow assurance-import\""

:: Check: schtasks /Query /TN "retryq process"
