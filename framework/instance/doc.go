// Package instance holds the generic ServiceInstance reconciler. One Reconciler runs per engine,
// as its own named controller; it drives the instance's life as a list of small phase functions
// and writes status once, at the end of each reconcile, only when it changed.
package instance
