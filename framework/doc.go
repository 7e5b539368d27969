// Package framework is Datafleet's engine-independent core. Nothing under framework/ imports an
// engine package: engines plug in through framework/engine's interfaces.
package framework
