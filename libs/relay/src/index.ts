export { RelaySocket } from './relaySocket.js';
