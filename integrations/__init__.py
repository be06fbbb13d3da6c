"""Framework adapters: ``infersight.integrations.asgi`` / ``.fastapi`` and ``.wsgi`` / ``.flask``."""
