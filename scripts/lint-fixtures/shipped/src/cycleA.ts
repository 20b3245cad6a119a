import { b } from './cycleB.js'; // expect-lint: import-x/no-cycle

export const a = (): number => b() + 1;
