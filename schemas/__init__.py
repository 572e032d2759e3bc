"""Models and encodings shared by every service and published for integrators.

- `catalog`: the contract's fixed vocabularies (categories, agencies, kecamatan, channels).
- `phone`: Indonesian phone numbers to E.164.
- `reports`: the REST models of intake.
- `events`: the data of every Kafka event, with its CloudEvents type.
- `envelope`: CloudEvents 1.0 binary-mode encoding and decoding for Kafka.
- `topics`: topic names.
- `generate`: writes `json/*.schema.json` and `asyncapi.json` from the models.
"""
