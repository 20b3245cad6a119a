/**
 * SQLSTATE classes and codes that say the server, not the statement, is the problem: connection exceptions
 * (08), insufficient resources (53: too many connections), operator intervention (57: shutting down,
 * starting up, crashed), and a transaction that lost a race (40001 serialization, 40P01 deadlock).
 */
function transientSqlState(code: string): boolean {
  return code.startsWith('08') || code.startsWith('53') || code.startsWith('57') || code === '40001' || code === '40P01';
}

/**
 * Whether a failed query failed because of the server (refused or dropped connection, a server shutting
 * down or starting up, a connect timeout), so that the same query may work later; false for an error of
 * the statement itself, which would fail the same way again.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  // The server's own answer (pg's DatabaseError) carries a severity and a SQLSTATE; a socket error
  // (ECONNREFUSED, EPIPE) or pg's "Connection terminated" carries neither.
  const { code, severity } = (err ?? {}) as { code?: unknown; severity?: unknown };
  if (typeof severity === 'string' && typeof code === 'string') return transientSqlState(code);
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return true;
  return err instanceof Error && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable/i.test(err.message);
}
