package instance

// Condition reasons the reconciler sets. Every not-Ready reason has a message that says what to do.
const (
	ReasonReady              = "Ready"
	ReasonProvisioning       = "Provisioning"
	ReasonUpdating           = "Updating"
	ReasonSettled            = "Settled"
	ReasonNotReady           = "NotReady"
	ReasonUnknownEngine      = "UnknownEngine"
	ReasonInvalidSpec        = "InvalidSpec"
	ReasonRenderFailed       = "RenderFailed"
	ReasonApplyFailed        = "ApplyFailed"
	ReasonDeleting           = "Deleting"
	ReasonDeletionProtected  = "DeletionProtected"
	ReasonDeletionNotBlocked = "NotBlocked"
	ReasonTLSNotSupported    = "TLSNotSupported"
	ReasonForeignObject      = "ForeignObject"
	ReasonPaused             = "Paused"
)

// Finalizer holds an instance until its children are cleaned up and deletion protection allows it.
const Finalizer = "datafleet.dev/instance"
