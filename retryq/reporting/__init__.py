"""Reading and reporting: statistics, Prometheus metrics, doctor, the dashboard."""
