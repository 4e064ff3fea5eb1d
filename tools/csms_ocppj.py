"""OCPP-J 1.6 framing and schema checks for the CSMS simulator (no I/O here).

The schemas are the official OCPP 1.6 JSON schemas (with the security white paper messages) that
ship with the `ocpp` package. They are loaded here rather than through `ocpp.messages` because the
simulator needs what the package does not give: the jsonschema error itself (for the violation
record), the OCPP 1.6 names of the CALLERROR codes (the package answers with 2.0 names such as
FormatViolation), `date-time` format checking, and synchronous checks that keep frame order.
"""

import dataclasses
import decimal
import json
import re
from pathlib import Path

import ocpp.v16
from jsonschema import Draft4Validator, FormatChecker
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case

CALL = 2
CALLRESULT = 3
CALLERROR = 4
MAX_ID_LEN = 36  # OCPP-J 1.6 section 4.1.3: a unique id is at most 36 characters

# Charge point -> CSMS actions, OCPP 1.6 core profiles + security white paper.
CP_ACTIONS = (
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "LogStatusNotification",
    "SecurityEventNotification",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
)

# CSMS -> charge point actions.
CSMS_ACTIONS = (
    "CancelReservation",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DataTransfer",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetLocalListVersion",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
    "CertificateSigned",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetInstalledCertificateIds",
    "GetLog",
    "InstallCertificate",
    "SignedUpdateFirmware",
)

ALL_ACTIONS = tuple(sorted(set(CP_ACTIONS) | set(CSMS_ACTIONS)))

# OCPP-J 1.6 section 4.2.3, spelled as the 1.6 specification spells them (the errata keeps the
# "Occurence" typo and "FormationViolation"; the 2.0 names are not valid in 1.6).
ERROR_CODES = (
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
)

_SCHEMA_DIR = Path(ocpp.v16.__file__).resolve().parent / "schemas"

# jsonschema keyword that failed -> OCPP-J 1.6 CALLERROR code.
_ERROR_CODE_BY_KEYWORD = {
    "type": "TypeConstraintViolation",
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "additionalProperties": "FormationViolation",
}
_DEFAULT_ERROR_CODE = "PropertyConstraintViolation"  # enum, maxLength, format, minimum, multipleOf...

# RFC 3339 date-time, which is what the schemas' "format": "date-time" means.
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")

_format_checker = FormatChecker(formats=())
_format_checker.checks("date-time")(lambda value: not isinstance(value, str) or bool(_DATE_TIME.match(value)))
_format_checker.checks("uri")(lambda value: not isinstance(value, str) or bool(_URI.match(value)))

_validators = {}


class Malformed(Exception):
    """A frame that is not a well-formed OCPP-J message.

    `msg_id` is the unique id when one could be read (else None), `answer` tells whether the
    sender expects an answer (a CALL, or a frame whose type we cannot tell): responses are never
    answered.
    """

    def __init__(self, code, text, msg_id=None, answer=True):
        super().__init__(code, text)
        self.code = code
        self.text = text
        self.msg_id = msg_id
        self.answer = answer


class UnknownSchema(Exception):
    pass


def _validator(action, kind):
    key = (action, kind)
    validator = _validators.get(key)
    if validator is None:
        if action not in ALL_ACTIONS:
            raise UnknownSchema(action)
        name = action + ("Response" if kind == "conf" else "") + ".json"
        # Decimal floats: the schemas' `multipleOf: 0.1` is exact only with decimals.
        with open(_SCHEMA_DIR / name, encoding="utf-8") as f:
            schema = json.load(f, parse_float=decimal.Decimal)
        validator = Draft4Validator(schema, format_checker=_format_checker)
        _validators[key] = validator
    return validator


def _as_decimal_json(payload):
    return json.loads(dumps(payload), parse_float=decimal.Decimal)


def schema_error(action, kind, payload):
    """None if `payload` is a valid `action` request ("req") or response ("conf"),
    else (CALLERROR code, readable text). Raises UnknownSchema for an action OCPP 1.6 lacks."""
    validator = _validator(action, kind)
    error = next(iter(sorted(validator.iter_errors(_as_decimal_json(payload)), key=_error_rank)), None)
    if error is None:
        return None
    code = _ERROR_CODE_BY_KEYWORD.get(error.validator, _DEFAULT_ERROR_CODE)
    where = "/".join(str(p) for p in error.absolute_path)
    text = "{}.{}: {}{}".format(action, kind, (where + ": ") if where else "", error.message)
    return code, text[:500]


def _error_rank(error):
    # Report the shallowest error first: it is the one a reader looks for.
    return len(error.absolute_path), error.validator


def parse_frame(text):
    """Parse one websocket text message into [type, id, ...]; raises Malformed."""
    try:
        msg = json.loads(text)
    except ValueError:
        raise Malformed("FormationViolation", "not valid JSON") from None
    if not isinstance(msg, list) or len(msg) < 2:
        raise Malformed("FormationViolation", "not an OCPP-J message array")
    kind = msg[0]
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise Malformed("FormationViolation", "MessageTypeId is not an integer")
    response = kind in (CALLRESULT, CALLERROR)
    msg_id = msg[1]
    if not isinstance(msg_id, str) or not msg_id:
        raise Malformed("FormationViolation", "UniqueId is not a non-empty string", answer=not response)
    if kind == CALL:
        if len(msg) == 3:
            raise Malformed("ProtocolError", "CALL without payload", msg_id)
        if len(msg) != 4 or not isinstance(msg[2], str):
            raise Malformed("FormationViolation", "a CALL is [2, id, action, payload]", msg_id)
        if not isinstance(msg[3], dict):
            raise Malformed("FormationViolation", "CALL payload is not a JSON object", msg_id)
    elif kind == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise Malformed("FormationViolation", "a CALLRESULT is [3, id, {payload}]", msg_id, False)
    elif kind == CALLERROR:
        if (
            len(msg) != 5
            or not isinstance(msg[2], str)
            or not isinstance(msg[3], str)
            or not isinstance(msg[4], dict)
        ):
            raise Malformed(
                "FormationViolation", "a CALLERROR is [4, id, code, description, {details}]", msg_id, False
            )
    else:
        raise Malformed("FormationViolation", f"unknown MessageTypeId {kind!r}", msg_id)
    return msg


def to_payload(obj):
    """A payload dict from a dict (returned as is) or an `ocpp.v16.call` dataclass instance."""
    if isinstance(obj, dict):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return snake_to_camel_case(remove_nones(serialize_as_dict(obj)))
    raise TypeError(f"payload must be a dict or an ocpp.v16.call dataclass, not {type(obj).__name__}")


class _Encoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, decimal.Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


def dumps(msg):
    """Compact JSON, as charge points and CSMSs put it on the wire."""
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False, cls=_Encoder)


def canonical_action(name):
    """The OCPP spelling of an action name given in any letter case, or None."""
    lowered = name.lower()
    for action in ALL_ACTIONS:
        if action.lower() == lowered:
            return action
    return None
