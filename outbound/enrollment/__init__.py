"""Enrollment: trigger rules and scheduled audiences turn events and contacts into enrollments and their messages."""
