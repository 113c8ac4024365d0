from hitl_shared.db.engine import create_engine, create_sessionmaker
from hitl_shared.db.types import utcnow

__all__ = ["create_engine", "create_sessionmaker", "utcnow"]
