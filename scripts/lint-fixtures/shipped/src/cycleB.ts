import { a } from './cycleA.js'; // expect-lint: import-x/no-cycle

export const b = (): number => (Math.random() > 2 ? a() : 0);
