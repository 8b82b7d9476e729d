"""Azure ML v1's `azureml.core.webservice`: runlab's objects under their v1 names."""

from runlab.sdk.webservice import AciWebservice, AksWebservice, LocalWebservice, Webservice

__all__ = ["AciWebservice", "AksWebservice", "LocalWebservice", "Webservice"]
