/**
 * The commands that talk to a running server over HTTP (src/cli/client.ts). Apart from that
 * module, so that main.ts can tell them from the server commands without loading either side:
 * `tessera serve` then never loads the client's modules, and the client commands never load the
 * server's (docs/performance.md, "Start-up").
 */
export const CLIENT_COMMANDS = [
  'user register',
  'user login',
  'user whoami',
  'user verify',
  'user logout',
  'token create',
  'token list',
  'token revoke',
  'token mint',
] as const
export type ClientCommand = (typeof CLIENT_COMMANDS)[number]

export function isClientCommand(command: string): command is ClientCommand {
  return (CLIENT_COMMANDS as readonly string[]).includes(command)
}
