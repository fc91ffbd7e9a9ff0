"""APScheduler jobs built from the gateway config (gateway.scheduler.jobs.build_scheduler)."""
