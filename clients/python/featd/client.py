"""featd.Client: one gRPC channel to featd and the calls users make (see the package docstring)."""
import datetime
import json
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Union

import grpc

from featd import errors
from featd.v1 import admin_pb2, admin_pb2_grpc, event_pb2, feature_service_pb2 as fs, feature_service_pb2_grpc

_MAX_KEYS = 1000   # serve.max_keys' default: requests are split into calls of at most this many


@dataclass
class TLS:
    """TLS to featd: ca (PEM file; None = the system's roots), and for mutual TLS cert and key; server_name
    overrides the name checked in featd's certificate."""
    ca: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None
    server_name: Optional[str] = None


@dataclass
class Prediction:
    entity_key: str
    score: float
    version: int            # the model version that scored this entity (a canary splits a reply)
    missing_features: int
    status: str = ""        # cluster: UNAVAILABLE or RESTORING when not scored


@dataclass
class PushResult:
    accepted: int
    rejected: List[tuple] = field(default_factory=list)   # (index, reason, detail), reason as a dead letter's


def _msg_dict(m):
    """A message as plain Python values (ints stay ints; every field present, as its default if unset)."""
    out = {}
    for fd in m.DESCRIPTOR.fields:
        v = getattr(m, fd.name)
        if fd.message_type and fd.message_type.GetOptions().map_entry:
            vt = fd.message_type.fields_by_name["value"]
            out[fd.name] = {k: (_msg_dict(x) if vt.message_type else x) for k, x in v.items()}
        elif fd.label == fd.LABEL_REPEATED:
            out[fd.name] = [_msg_dict(x) if fd.message_type else x for x in v]
        elif fd.message_type:
            out[fd.name] = _msg_dict(v) if m.HasField(fd.name) else None
        elif fd.enum_type:
            out[fd.name] = fd.enum_type.values_by_number[v].name if v in fd.enum_type.values_by_number else v
        else:
            out[fd.name] = v
    return out


def _value(v):
    kind = v.WhichOneof("kind")
    return getattr(v, kind) if kind else None


def _to_value(x):
    if x is None:
        return None
    if isinstance(x, bool):
        return event_pb2.Value(bool_value=x)
    if isinstance(x, int):
        return event_pb2.Value(int64_value=x)
    if isinstance(x, float):
        return event_pb2.Value(double_value=x)
    if isinstance(x, str):
        return event_pb2.Value(string_value=x)
    if hasattr(x, "item"):   # numpy scalars
        return _to_value(x.item())
    raise TypeError(f"a feature value must be bool, int, float or str, not {type(x).__name__}")


def _ms(t):
    """Milliseconds since the epoch from an int, a datetime (naive = UTC) or a pandas Timestamp."""
    if t is None:
        return 0
    if isinstance(t, (int,)) or (hasattr(t, "dtype") and "int" in str(t.dtype)):
        return int(t)
    if hasattr(t, "value") and hasattr(t, "tz_localize"):   # pandas Timestamp
        return int(t.value // 1_000_000) if t.tzinfo is not None else int(t.tz_localize("UTC").value // 1_000_000)
    if isinstance(t, datetime.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=datetime.timezone.utc)
        return int(t.timestamp() * 1000)
    raise TypeError(f"a time must be milliseconds since the epoch or a datetime, not {type(t).__name__}")


class Client:
    """A connection to featd's gRPC port.

    address: "host:port"; token: a bearer token (auth.read_tokens_file or admin_tokens_file), or None when
    featd has no [auth]; tls: None (plain text), True (TLS, system roots) or a TLS; timeout: seconds per call.
    Every method raises featd.FeatdError (a subclass per gRPC status) carrying featd's message."""

    def __init__(self, address: str, token: Optional[str] = None, tls: Union[None, bool, TLS] = None,
                 timeout: float = 30.0):
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        if tls:
            t = tls if isinstance(tls, TLS) else TLS()
            rd = (lambda p: open(p, "rb").read() if p else None)
            creds = grpc.ssl_channel_credentials(rd(t.ca), rd(t.key), rd(t.cert))
            if t.server_name:
                opts.append(("grpc.ssl_target_name_override", t.server_name))
            self._channel = grpc.secure_channel(address, creds, options=opts)
        else:
            self._channel = grpc.insecure_channel(address, options=opts)
        self._meta = [("authorization", f"Bearer {token}")] if token else None
        self._fs = feature_service_pb2_grpc.FeatureServiceStub(self._channel)
        self._admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        self.timeout = timeout
        self._tables = None

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- plumbing ----

    def _call(self, stub, method, req, stream=False):
        try:
            fn = getattr(stub, method)
            if stream:
                return list(fn(req, timeout=self.timeout, metadata=self._meta))
            return fn(req, timeout=self.timeout, metadata=self._meta)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, method) from None

    def tables(self) -> Dict[str, dict]:
        """The tables featd serves: name -> {"entity", "topic", "ttl_ms", "features": {name: type}}."""
        if self._tables is None:
            r = self._call(self._admin, "ListTables", admin_pb2.ListTablesRequest())
            self._tables = {t.name: {"entity": t.entity, "topic": t.topic, "ttl_ms": t.ttl_ms,
                                     "features": {f.name: f.type for f in t.features}} for t in r.tables}
        return self._tables

    def _refs(self, features) -> Dict[str, List[str]]:
        """table -> features from "table" (all of its features) or ["table:feature", ...] (Feast's refs;
        "table.feature" too)."""
        if isinstance(features, str):
            features = [features]
        out: Dict[str, List[str]] = {}
        for ref in features:
            sep = ":" if ":" in ref else "." if "." in ref else None
            if sep is None:
                if ref not in self.tables():
                    raise errors.NotFound(f"no table \"{ref}\"", "ListTables")
                out.setdefault(ref, []).extend(self.tables()[ref]["features"])
            else:
                t, f = ref.split(sep, 1)
                out.setdefault(t, []).append(f)
        return out

    # ---- features ----

    def get_online_features(self, features, keys: Sequence[str], as_frame: bool = False,
                            with_status: bool = False):
        """The latest values of features for entity keys: a list of dicts {"entity_key", feature: value}
        (None where featd has no value: never written, expired, or in a cluster unavailable), or a pandas
        DataFrame with as_frame. features: a table name (all its features) or ["table:feature", ...] of
        tables keyed by the same entity. with_status adds "FEATURE__status" (PRESENT, NOT_FOUND, EXPIRED,
        UNAVAILABLE, RESTORING) and "FEATURE__event_time_ms"."""
        keys = list(keys)
        rows = [{"entity_key": k} for k in keys]
        refs = self._refs(features)
        clash = {f for t, fs_ in refs.items() for f in fs_ if sum(f in v for v in refs.values()) > 1}
        for table, feats in refs.items():
            for b in range(0, len(keys), _MAX_KEYS):
                r = self._call(self._fs, "GetOnlineFeatures", fs.GetOnlineFeaturesRequest(
                    table=table, entity_keys=keys[b:b + _MAX_KEYS], features=feats))
                for i, row in enumerate(r.rows):
                    out = rows[b + i]
                    for f, v in zip(r.features, row.values):
                        col = f"{table}__{f}" if f in clash else f
                        out[col] = _value(v.value) if v.status == fs.PRESENT else None
                        if with_status:
                            out[f"{col}__status"] = fs.FeatureStatus.Name(v.status)
                            out[f"{col}__event_time_ms"] = v.event_time_ms
        if as_frame:
            import pandas as pd
            return pd.DataFrame(rows)
        return rows

    def get_historical_features(self, entity_df, features, timestamp_column: str = "event_timestamp"):
        """Point-in-time values (Feast's habit): entity_df, a pandas DataFrame with an entity key column
        (named after each table's entity, or "entity_key") and timestamp_column (datetimes, naive = UTC, or
        ms since the epoch), gets one column per feature: the latest value at or before each row's time
        within the table's TTL (None otherwise). Returns a new DataFrame, rows in entity_df's order."""
        import pandas as pd
        refs = self._refs(features)
        out = entity_df.copy()
        times = [_ms(t) for t in entity_df[timestamp_column]]
        clash = {f for t, fs_ in refs.items() for f in fs_ if sum(f in v for v in refs.values()) > 1}
        for table, feats in refs.items():
            ent = self.tables()[table]["entity"]
            col = ent if ent in entity_df.columns else "entity_key"
            if col not in entity_df.columns:
                raise errors.InvalidArgument(f"entity_df has no \"{ent}\" (table {table}'s entity) or \"entity_key\" "
                                             "column", "GetHistoricalFeatures")
            keys = [str(k) for k in entity_df[col]]
            values = {f: [None] * len(keys) for f in feats}
            for b in range(0, len(keys), _MAX_KEYS):
                req = fs.GetHistoricalFeaturesRequest(table=table, features=feats, rows=[
                    fs.EntityTime(entity_key=k, ts_ms=t) for k, t in zip(keys[b:b + _MAX_KEYS], times[b:b + _MAX_KEYS])])
                for i, row in enumerate(self._call(self._fs, "GetHistoricalFeatures", req, stream=True)):
                    for f, v in zip(feats, row.values):
                        values[f][b + i] = _value(v.value) if v.status == fs.PRESENT else None
            for f in feats:
                out[f"{table}__{f}" if f in clash else f] = pd.Series(values[f], index=out.index, dtype=object)
        return out

    def push(self, table: str, rows) -> PushResult:
        """Feature events for table (admin token): rows, a list of dicts or a DataFrame, each with "key" (or
        the table's entity name), optionally "ts" (ms or datetime; default: featd's now) and feature values
        (None: not sent). Returns once the broker acknowledged them; rejected events (index, dead-letter
        reason, detail) are in the result, the rest were accepted."""
        if hasattr(rows, "to_dict"):
            rows = rows.to_dict("records")
        ent = self.tables().get(table, {}).get("entity", "key")
        events = []
        for r in rows:
            key = r.get("key", r.get(ent))
            e = event_pb2.FeatureEvent(table=table, key="" if key is None else str(key), ts=_ms(r.get("ts")))
            for k, v in r.items():
                if k in ("key", "ts", ent) or v is None or (isinstance(v, float) and v != v):
                    continue   # None, or a DataFrame's NaN: not sent
                pv = _to_value(v)
                if pv is not None:
                    e.features[k].CopyFrom(pv)
            events.append(e)
        res = PushResult(0)
        for b in range(0, len(events), _MAX_KEYS):
            r = self._call(self._fs, "Push", fs.PushRequest(table=table, events=events[b:b + _MAX_KEYS]))
            res.accepted += r.accepted
            res.rejected += [(b + x.index, x.reason, x.detail) for x in r.rejected]
        return res

    # ---- models ----

    def predict(self, model: str, keys: Sequence[str], alias: Optional[str] = None, version: int = 0,
                as_frame: bool = False):
        """Scores of model for entity keys (the champion unless alias or version says otherwise): a list of
        Prediction, or a DataFrame with as_frame."""
        keys = list(keys)
        out = []
        for b in range(0, len(keys), _MAX_KEYS):
            r = self._call(self._fs, "Predict", fs.PredictRequest(model=model, entity_keys=keys[b:b + _MAX_KEYS],
                                                                  alias=alias or "", version=version))
            out += [Prediction(p.entity_key, p.score, p.version or r.version, p.missing_features,
                               fs.FeatureStatus.Name(p.status) if p.status else "") for p in r.predictions]
        if as_frame:
            import pandas as pd
            return pd.DataFrame([p.__dict__ for p in out])
        return out

    def models(self, model: Optional[str] = None) -> List[dict]:
        """Registered versions (of model, or of every model), newest first, as dicts (ModelVersion's fields;
        params parsed)."""
        r = self._call(self._admin, "ListModels", admin_pb2.ListModelsRequest(model=model or ""))
        out = []
        for v in r.versions:
            d = _msg_dict(v)
            d["params"] = json.loads(d.pop("params_json") or "{}")
            out.append(d)
        return out

    def promote(self, model: str, version: int = 0) -> int:
        """Makes version (0: the challenger) the champion; returns it."""
        return self._call(self._admin, "Promote", admin_pb2.PromoteRequest(model=model, version=version)).champion.version

    def rollback(self, model: str) -> int:
        """Returns to the previous champion; returns its version."""
        return self._call(self._admin, "Rollback", admin_pb2.RollbackRequest(model=model)).champion.version

    def _wait_run(self, model, run_id, progress, poll):
        while True:
            s = self._call(self._admin, "GetRetrainStatus", admin_pb2.GetRetrainStatusRequest(model=model, run_id=run_id))
            if progress:
                progress(s.phase, s.progress)
            if s.state == "succeeded":
                return s.version
            if s.state == "failed":
                raise errors.TrainingFailed(s.error, "GetRetrainStatus")
            time.sleep(poll)

    def retrain(self, model: str, wait: bool = True, reason: str = "python", progress=None, poll: float = 0.2):
        """Asks for a retrain. wait: blocks until it ends and returns the registered version (progress, if
        given, is called with (phase, fraction) as it goes; a failed run raises TrainingFailed); else returns
        the run id."""
        r = self._call(self._admin, "TriggerRetrain", admin_pb2.TriggerRetrainRequest(model=model, reason=reason))
        return self._wait_run(model, r.run_id, progress, poll) if wait else r.run_id

    def import_model(self, model: str, path: str, features: Optional[Sequence[str]] = None, wait: bool = True,
                     progress=None):
        """Registers an XGBoost JSON model (Booster.save_model("m.json")) as model's next version; features
        name its input columns when the file does not. Returns the version (wait) or the run id."""
        data = open(path, "rb").read()
        r = self._call(self._admin, "ImportModel", admin_pb2.ImportModelRequest(
            model=model, format="xgboost-json", data=data, features=list(features or []), source=path.split("/")[-1]))
        return self._wait_run(model, r.run_id, progress, 0.2) if wait else r.run_id

    # ---- monitoring ----

    def drift_report(self, table: Optional[str] = None, feature: Optional[str] = None, as_frame: bool = False):
        """The last judged window of each monitored distribution, as dicts (or a DataFrame)."""
        r = self._call(self._admin, "GetDriftReport", admin_pb2.GetDriftReportRequest(table=table or "",
                                                                                        feature=feature or ""))
        out = [_msg_dict(f) for f in r.features]
        if as_frame:
            import pandas as pd
            return pd.DataFrame(out)
        return out

    def status(self) -> dict:
        """featd's status (StatusResponse as a dict)."""
        return _msg_dict(self._call(self._admin, "Status", admin_pb2.StatusRequest()))
