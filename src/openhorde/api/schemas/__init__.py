"""Wire models: request and response bodies with the AI Horde v2 field names."""
