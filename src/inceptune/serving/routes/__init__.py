"""The server's routes, one module per protocol; each module's `routes(serving)` returns its APIRouter."""
