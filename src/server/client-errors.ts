/**
 * Answers requests node:http cannot parse (headers over its 16 KiB limit, malformed request
 * lines, a request that took too long to arrive) with the same coded JSON as every other error.
 * node's default answer is a bare "431" or "400" with no body, the one kind of error response
 * that carried no code.
 */
import { type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

function statusOf(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

const MESSAGES: Record<number, string> = {
  431: 'The request headers are too large; send a shorter request (API keys and cookies included).',
  408: 'The request did not arrive in time.',
  400: 'The request is not valid HTTP.',
};

export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Nothing to answer on a connection that is already gone.
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const status = statusOf(err.code);
    const body = JSON.stringify({ error: { code: 'BAD_USER_INPUT', message: MESSAGES[status] } });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  });
}
