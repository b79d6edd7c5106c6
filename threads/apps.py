from django.apps import AppConfig


class ThreadsConfig(AppConfig):
    name = "threads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from .api.tokens import install_rotating_backend

        install_rotating_backend()
