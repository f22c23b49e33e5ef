"""Region rules as data: pydantic models, the TOML loader, and compilation to flat arrays."""

from .loader import default_policy_path, load_default_policy, load_policy, policy_from_dict
from .models import Catalogue, CatalogueItem, Policy, Region, RuleSet

__all__ = [
    "Catalogue",
    "CatalogueItem",
    "Policy",
    "Region",
    "RuleSet",
    "default_policy_path",
    "load_default_policy",
    "load_policy",
    "policy_from_dict",
]
