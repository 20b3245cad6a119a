// Breaks no rule: what each rule must leave alone.
import { type Shape } from './shape.js';
import { square } from './typeImport.js';
import { subjects } from '@paddock/bus';

async function save(shape: Shape): Promise<number> {
  return shape.sides;
}

export async function saveAll(shapes: Shape[]): Promise<void> {
  await save(square);
  await Promise.all(shapes.map(async (shape) => save(shape)));
  // Deliberately not awaited, and said so.
  void save(square).catch(() => undefined);
}

export const subject = subjects;
