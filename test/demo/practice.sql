-- test/demo/practice.sql
--
-- pgbench script for test/demo.sh: one student finishes one exercise.  The
-- student's practice is the stream "student-N"; the student's school is the
-- partition key, fixed per student (school = 1 + N % 50), so every append to
-- a stream names the same partition.  No expected version: students append
-- concurrently with anyone.
\set student random(1, 2000)
\set school 1 + :student % 50
\set exercise random(1, 400)
\set score random(0, 100)
SELECT * FROM eventstore.append(
	'student-' || :student,
	ARRAY[eventstore.event(
		'ExerciseCompleted',
		jsonb_build_object('exercise', :exercise, 'score', :score),
		jsonb_build_object('school', 'school-' || :school))],
	NULL,
	'school-' || :school);
