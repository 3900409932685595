/** The slice of a pino logger the SIP side writes to; a pino Logger fits as is. */
export interface SipLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: SipLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
