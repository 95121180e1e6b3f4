"""Local stand-ins for Key Vault and API Management (ARM), plus PKI minting for demos and tests.

``rotation`` never imports this package except from the CLI's ``demo`` and ``devstack`` commands.
"""
