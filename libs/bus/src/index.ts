export { Bus, isNotFound, type BusOptions, type ConsumeOptions, type Delivery, type Subscription } from './bus.js';
export { topics, streams, streamOf, subjectId, type Topic, type StreamName, type StreamSpec } from './subjects.js';
