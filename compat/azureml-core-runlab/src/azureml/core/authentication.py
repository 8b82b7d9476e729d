"""Azure ML v1's `azureml.core.authentication`: runlab's objects under their v1 names."""

from runlab.sdk.authentication import (
    AbstractAuthentication,
    AzureCliAuthentication,
    InteractiveLoginAuthentication,
    MsiAuthentication,
    ServicePrincipalAuthentication,
    TokenAuthentication,
)

__all__ = ["AbstractAuthentication", "AzureCliAuthentication", "InteractiveLoginAuthentication", "MsiAuthentication",
           "ServicePrincipalAuthentication", "TokenAuthentication"]
