export function runAll(names: string[]): void {
  names.forEach(async (name) => { // expect-lint: @typescript-eslint/no-misused-promises
    await Promise.resolve(name);
  });
}
