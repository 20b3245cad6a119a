# An SSH login joins the agent's tmux session, where the work happens; leave with Ctrl-b d.
if [ -n "${SSH_CONNECTION:-}" ] && [ -z "${TMUX:-}" ] && [ -t 0 ] && tmux has-session -t agent 2>/dev/null; then
  exec tmux attach-session -t agent
fi
