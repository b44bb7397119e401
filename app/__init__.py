"""somcal service: settings, storage, ingestion and the REST API around the `som` library."""
