package controllers

// outcome is why a run cannot go on now, decided where the cause is found: either the run waits
// (the cause may pass: a store not ready yet, an instance being created) or it is refused (final:
// retrying cannot help, as with a target that exists already or a confirmation that does not
// match). Deciding it there, rather than by matching reasons afterwards, keeps a new reason from
// being retried forever by omission.
type outcome struct {
	reason, message string
	final           bool
}

// waiting is an outcome the run retries.
func waiting(reason, message string) *outcome { return &outcome{reason: reason, message: message} }

// refused is an outcome that fails the run.
func refused(reason, message string) *outcome {
	return &outcome{reason: reason, message: message, final: true}
}
