package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"
)

// The operator's administrator is created from default_user/default_pass only when the node
// starts on an empty database. A node started over a volume that outlived its Secret (a retained
// volume re-bound after a namespace deletion, or a Secret deleted by hand) keeps the old
// administrator's password, and the operator would be locked out of its own broker. The agent
// therefore brings the administrator to the mounted Secret's password once the node runs, with
// rabbitmqctl, which the node trusts through the Erlang cookie the agent wrote at start (no old
// password is needed), and reports the node ready only after that.

// adminCheckInterval is how often Control tries again while the node does not run yet.
var adminCheckInterval = 2 * time.Second

// Control implements fwagent.Controller: it checks the administrator's password once the node
// accepts connections, then only waits for the agent to stop.
func (e *Engine) Control(ctx context.Context) error {
	t := time.NewTicker(adminCheckInterval)
	defer t.Stop()
	for !e.adminChecked.Load() {
		if e.accepting(ctx) == "" {
			if err := e.ensureAdmin(ctx); err != nil {
				log.FromContext(ctx).Error(err, "bringing the administrator to the Secret's password")
			} else {
				e.adminChecked.Store(true)
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// ImmediateStopSignal implements fwagent.Controller; Control never asks for an immediate stop.
func (e *Engine) ImmediateStopSignal() os.Signal { return syscall.SIGTERM }

// AfterStop implements fwagent.Controller: nothing to release.
func (e *Engine) AfterStop(context.Context) {}

// ensureAdmin makes the administrator log in with the Secret's password: nothing when it does,
// else its password is changed, or the user created as an administrator when it is missing. The
// password goes to rabbitmqctl on its standard input, never on a command line.
func (e *Engine) ensureAdmin(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	password, err := e.adminPassword()
	if err != nil {
		return fmt.Errorf("reading the administrator's password: %w", err)
	}
	user := e.Config.User
	if _, err := e.ctl(ctx, password, "authenticate_user", user); err == nil {
		return nil
	}
	out, err := e.ctl(ctx, password, "change_password", user)
	if err != nil && strings.Contains(out, "no_such_user") {
		if _, err = e.ctl(ctx, password, "add_user", user); err == nil {
			_, err = e.ctl(ctx, "", "set_user_tags", user, "administrator")
		}
	}
	if err != nil {
		return err
	}
	log.FromContext(ctx).Info("the administrator's password on the node was not the Secret's: changed it", "user", user)
	return nil
}

// ctl runs rabbitmqctl against this node with stdin on its standard input, and returns its output.
// Not with --longnames (RABBITMQ_USE_LONGNAME says it): RabbitMQ 4.0's rabbitmqctl given both
// --longnames and a password on its standard input waits for ever.
func (e *Engine) ctl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := e.tool(ctx, "rabbitmqctl", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
