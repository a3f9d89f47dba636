"""painbattery's upload service (FastAPI), job worker and camera-rig hooks."""
