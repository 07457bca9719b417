"""Event Grid: topics, system topics, event subscriptions, publishing, validation and delivery."""
