// The reference interpreter: float64 forward/backward of a Graph, the oracle for every backend.
export { Interpreter } from './interpreter.js';
export type { ForwardOptions, InterpreterStepResult, LossResult, PenaltyOptions, StepResult } from './interpreter.js';
