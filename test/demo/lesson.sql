-- test/demo/lesson.sql
--
-- pgbench script for test/demo.sh: one student hands in a whole lesson, ten
-- exercises appended as one batch (one call, one transaction).  Same streams
-- and schools as practice.sql.
\set student random(1, 2000)
\set school 1 + :student % 50
\set lesson random(1, 40)
SELECT count(*) AS appended FROM eventstore.append(
	'student-' || :student,
	ARRAY(SELECT eventstore.event(
				'ExerciseCompleted',
				jsonb_build_object('exercise', :lesson * 10 + i,
								   'lesson', :lesson,
								   'score', round(random() * 100)),
				jsonb_build_object('school', 'school-' || :school))
			FROM generate_series(1, 10) AS i),
	NULL,
	'school-' || :school);
