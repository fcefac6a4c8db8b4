"""Adapters: the outside world talking to the services (CSV imports, the SMTP mailer, the scheduler,
demo and bulk data). They call services; services never call them."""
