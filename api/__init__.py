"""The FastAPI service: routes, response models and the in-memory scoring index."""
