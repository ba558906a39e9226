"""featd's Python client: online and point-in-time feature reads (rows or pandas DataFrames),
predictions, pushes, training-set export and the model registry's admin calls.

    import featd
    store = featd.Client("127.0.0.1:50051", token="...")
    store.get_online_features(["user:clicks", "user:country"], ["u1", "u2"], as_frame=True)

See Client, and featd.errors for the exceptions every call may raise."""
from featd.client import TLS, Client, Prediction, PushResult
from featd.errors import (AlreadyExists, DataLoss, DeadlineExceeded, FailedPrecondition, FeatdError, Internal,
                          InvalidArgument, NotFound, PermissionDenied, ResourceExhausted, TrainingFailed,
                          Unauthenticated, Unavailable, Unimplemented)

__all__ = ["Client", "TLS", "Prediction", "PushResult", "FeatdError", "InvalidArgument", "NotFound",
           "AlreadyExists", "PermissionDenied", "Unauthenticated", "FailedPrecondition", "ResourceExhausted",
           "Unavailable", "DeadlineExceeded", "Internal", "Unimplemented", "DataLoss", "TrainingFailed"]
__version__ = "0.1.0"
