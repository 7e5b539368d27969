package controllers

// Shared reasons.
const (
	ReasonInstanceNotFound   = "InstanceNotFound"
	ReasonInstanceNotReady   = "InstanceNotReady"
	ReasonStoreNotFound      = "StoreNotFound"
	ReasonStoreNotReady      = "StoreNotReady"
	ReasonNoStore            = "NoStore"
	ReasonNotSupported       = "BackupsNotSupported"
	ReasonEngineNotEnabled   = "EngineNotEnabled"
	ReasonRunning            = "Running"
	ReasonJobLost            = "JobLost"
	ReasonDeleteFailed       = "DeleteFailed"
	ReasonCredentialsMissing = "CredentialsNotFound"
	// ReasonKeyMissing: the store's encryption key Secret or key does not exist (yet).
	ReasonKeyMissing = "EncryptionKeyNotFound"
	// ReasonWeakKey: the store's encryption key is too weak to encrypt a new backup with.
	ReasonWeakKey = "WeakKey"
	// ReasonRestoreInProgress: a deleted Backup waits for the Restores that still read it.
	ReasonRestoreInProgress = "RestoreInProgress"
	// ReasonNotArchiving: a physical backup of an instance without continuous archiving.
	ReasonNotArchiving = "NotArchiving"
)

// ReasonStoreNotAllowed: the platform's store policy refuses the store (store.Policy).
const ReasonStoreNotAllowed = "StoreNotAllowed"
