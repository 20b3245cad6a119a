-- The SSH password of an instance that runs sshd (agents and services), generated per execution. It
-- opens nothing once the container is gone.
ALTER TABLE broker_instances ADD COLUMN ssh_password TEXT;
