"""The graph model, the stores (embedded SQLite and Neo4j), and ring detection."""
