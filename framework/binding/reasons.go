package binding

// Reasons of a binding's Ready condition. Every not-Ready reason comes with a message that says
// what to do.
const (
	ReasonBound                = "Bound"
	ReasonInstanceNotFound     = "InstanceNotFound"
	ReasonInstanceNotReady     = "InstanceNotReady"
	ReasonNamespaceNotAllowed  = "NamespaceNotAllowed"
	ReasonEngineNotEnabled     = "EngineNotEnabled"
	ReasonBindingsNotSupported = "BindingsNotSupported"
	ReasonRoleNotSupported     = "RoleNotSupported"
	ReasonInvalidSpec          = "InvalidSpec"
	ReasonReservedTarget       = "ReservedTarget"
	ReasonRoleNotAllowed       = "RoleNotAllowed"
	ReasonTargetNotShared      = "TargetNotShared"
	ReasonSecretConflict       = "SecretConflict"
	ReasonUserFailed           = "UserFailed"
	ReasonRevokeFailed         = "RevokeFailed"
	ReasonDeleting             = "Deleting"
)

// Finalizer holds a binding until its users are dropped and its Secret deleted.
const Finalizer = "datafleet.dev/binding"

// Event reasons.
const (
	EventRotated = "CredentialsRotated"
	EventRevoked = "PreviousCredentialsRevoked"
)
