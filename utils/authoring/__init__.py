"""Instructor tools: generate notebooks from solutions/ (build), execute and time them (execute), write a
student release (release). Never shipped to learners."""
