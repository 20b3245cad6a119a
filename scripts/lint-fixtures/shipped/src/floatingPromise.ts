async function save(): Promise<void> {}

export function run(): void {
  save(); // expect-lint: @typescript-eslint/no-floating-promises
}
