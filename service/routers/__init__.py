"""The service's routes, one :class:`fastapi.APIRouter` per area; :func:`service.app.create_app` includes them."""
