"""FastAPI review service: app factory, storage, Redis consumer, web pages."""
