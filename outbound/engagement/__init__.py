"""Engagement: what people do with what they received: survey answers and the callback tasks agents work."""
