"""Storage, the model store, errors and logging shared by every stage and job."""
