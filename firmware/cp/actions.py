# The action table: every OCPP action the backend may call on us -> (module, handler function).
# Modules are imported when the action first arrives. An action of OCPP 1.6 missing here is
# answered NotSupported; a name OCPP 1.6 does not know is answered NotImplemented. Profile by
# profile: each handler lives in its profile's folder.
ACTIONS = {
    # Core
    "GetConfiguration": ("cp.core.h_config", "get_configuration"),
    "ChangeConfiguration": ("cp.core.h_config", "change_configuration"),
    "Reset": ("cp.core.h_reset", "reset"),
    "RemoteStartTransaction": ("cp.core.h_remote", "remote_start"),
    "RemoteStopTransaction": ("cp.core.h_remote", "remote_stop"),
    "ChangeAvailability": ("cp.core.h_avail", "change_availability"),
    "UnlockConnector": ("cp.core.h_unlock", "unlock_connector"),
    "ClearCache": ("cp.core.h_cache", "clear_cache"),
    "DataTransfer": ("cp.core.h_data", "data_transfer"),
    # Local Auth List Management
    "SendLocalList": ("cp.localauth.h_locallist", "send_local_list"),
    "GetLocalListVersion": ("cp.localauth.h_locallist", "get_local_list_version"),
    # Reservation
    "ReserveNow": ("cp.reservation.h_reserve", "reserve_now"),
    "CancelReservation": ("cp.reservation.h_reserve", "cancel_reservation"),
    # Remote Trigger
    "TriggerMessage": ("cp.trigger.h_trigger", "trigger_message"),
    # Smart Charging
    "SetChargingProfile": ("cp.smart.h_smart", "set_charging_profile"),
    "ClearChargingProfile": ("cp.smart.h_smart", "clear_charging_profile"),
    "GetCompositeSchedule": ("cp.smart.h_smart", "get_composite_schedule"),
}
