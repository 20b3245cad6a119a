/** A file of the plane that cannot be used as it is (a key that does not parse); `file` names it. */
export class PlaneError extends Error {
  readonly file: string;

  constructor(file: string, message: string, options?: ErrorOptions) {
    super(`${file}: ${message}`, options);
    this.name = 'PlaneError';
    this.file = file;
  }
}
