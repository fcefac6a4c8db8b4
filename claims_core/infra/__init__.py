"""What the services stand on: configuration, the database (engine, models, migrations) and the
photo codec."""
