"""The model zoo: training recipes for the course's models and the model card. Never shipped to learners."""
